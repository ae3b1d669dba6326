"""`siegeflow review`: the drawn sample and its design, labels in the store (SQLite and
PostgreSQL), the prediction-powered ASR against simulations with a known rate, the figures in
every report, the terminal mode, the page's access rules and the labels export round trip."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from reports.artifacts import summary_markdown
from reports.html import render_report
from reports.junit import render_junit
from reports.load import load_run
from reports.review.estimate import LabelledItem, ppi_asr
from reports.review.items import ReviewSession, review_figures
from reports.review.sample import allocate, draw_sample
from reports.review.server import ReviewServer
from reports.review.tui import run_tui
from reports.sarif import render_sarif
from tests.reports.synthetic import record_synthetic_run
from tracking import AttemptRecord, RunSummary, SQLBackend

runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLBackend]:
    url = (f"sqlite:///{tmp_path / 'review.db'}" if request.param == "sqlite"
           else request.getfixturevalue("fresh_postgres_url"))
    backend = SQLBackend(url)
    yield backend
    backend.close()


def _label_like_a_person(session: ReviewSession, count: int, seed: int = 1,
                         reviewer_error: float = 0.15) -> dict[int, str]:
    """Label `count` items: mostly agreeing with the panel, sometimes not."""
    rng = random.Random(seed)
    given = {}
    for item in session.items[:count]:
        agree = rng.random() > reviewer_error
        label = "true" if item.panel == agree else "false"
        session.label(item.attempt_id, label, "looked closely" if not agree else None)
        given[item.attempt_id] = label
    return given


def test_allocation_is_proportional_with_a_floor_per_stratum() -> None:
    assert allocate(50, {"broken": 10, "held": 190}, {}) == {"broken": 10, "held": 40}
    assert allocate(50, {"broken": 40, "held": 160}, {}) == {"broken": 13, "held": 37}
    assert allocate(50, {"broken": 100, "held": 100}, {}) == {"broken": 25, "held": 25}
    assert allocate(500, {"broken": 10, "held": 20}, {}) == {"broken": 10, "held": 20}
    # an extension keeps what was drawn and grows towards the same rule
    assert allocate(80, {"broken": 40, "held": 160}, {"broken": 13, "held": 37}) == {
        "broken": 20, "held": 60}


def test_sample_is_stratified_recorded_and_extended_without_repeats(store: SQLBackend) -> None:
    run_id = record_synthetic_run(store, 120, seed=3)
    data = load_run(store, run_id, with_traces=False)
    first = draw_sample(store, data, 50, seed=11)
    assert first.count == 50 and first.seed == 11
    assert min(first.added.values()) >= 13  # both verdicts checked (25% floor)
    again = draw_sample(store, data, 50, seed=12)
    assert again.count == 0  # the sample already holds 50: a resume, not a new draw
    more = draw_sample(store, data, 80, seed=13)
    assert more.count == 30
    draws = store.list_review_draws(run_id)
    assert len(draws) == 80 and len({d.result_id for d in draws}) == 80
    assert [d.position for d in draws] == list(range(80))
    assert {d.seed for d in draws} == {11, 13} and len({d.draw_id for d in draws}) == 2
    for d in draws:
        size = first.sizes[d.stratum]
        assert d.stratum_size == size
        drawn_then = (first if d.seed == 11 else more).drawn[d.stratum]
        assert d.inclusion_prob == pytest.approx(drawn_then / size)
    later = [d for d in draws if d.seed == 13]
    assert later[0].draw_prob == pytest.approx(
        more.added[later[0].stratum] / (first.sizes[later[0].stratum]
                                        - first.drawn[later[0].stratum]))
    # strata interleaved in the shown order: position says nothing about the verdict
    first_ten = {d.stratum for d in draws[:10]}
    assert first_ten == {"broken", "held"}


def test_labels_are_stored_apart_and_give_the_figures(store: SQLBackend) -> None:
    run_id = record_synthetic_run(store, 120, seed=5)
    data = load_run(store, run_id, with_traces=False)
    draw_sample(store, data, 50, seed=2)
    verdicts_before = [(j.attempt_id, j.judge, j.success) for j in
                       store.list_judgments(run_id=run_id)]
    alice = ReviewSession(store, run_id, "alice")
    given = _label_like_a_person(alice, 35)
    assert alice.progress() == (35, 50)
    assert alice.next_item() is alice.items[35]
    alice.label(alice.items[0].attempt_id, given[alice.items[0].attempt_id], "<b>relabel</b>")
    labels = store.list_review_labels(run_id)
    assert len(labels) == 35 and {lab.reviewer for lab in labels} == {"alice"}
    assert [(j.attempt_id, j.judge, j.success) for j in
            store.list_judgments(run_id=run_id)] == verdicts_before  # verdicts untouched
    bob = ReviewSession(store, run_id, "bob")
    assert bob.progress() == (0, 50)
    _label_like_a_person(bob, 20, seed=9)
    figures = review_figures(store, load_run(store, run_id, with_traces=False))
    assert figures is not None and figures.enough and figures.reviewers == ["alice", "bob"]
    (pair,) = figures.between
    assert (pair.a, pair.b, pair.n) == ("alice", "bob", 20) and pair.kappa is not None
    # the PPI figure is the stratified estimator: Σ_h W_h ȳ_h over the combined labels
    items = {i.attempt_id: i for i in alice.items}
    from reports.review.items import label_shares

    combined = label_shares(store.list_review_labels(run_id))
    means = {}
    for h in ("broken", "held"):
        ys = [v for k, v in combined.items() if items[k].stratum == h]
        means[h] = sum(ys) / len(ys)
    n_total = sum(figures.sizes.values())
    expected = sum(figures.sizes[h] / n_total * means[h] for h in means)
    assert figures.ppi is not None and figures.ppi.asr.value == pytest.approx(expected)
    assert figures.ppi.judge_rate == pytest.approx(figures.sizes["broken"] / n_total)
    assert figures.ppi.asr.low < expected < figures.ppi.asr.high
    disagreeing = {d.item.attempt_id for d in figures.disagreements}
    assert disagreeing == {k for k, v in combined.items() if v != float(items[k].panel)}


def test_too_few_labels_give_no_figure(store: SQLBackend) -> None:
    run_id = record_synthetic_run(store, 60, seed=8)
    data = load_run(store, run_id, with_traces=False)
    draw_sample(store, data, 40, seed=1)
    _label_like_a_person(ReviewSession(store, run_id, "alice"), 10)
    figures = review_figures(store, load_run(store, run_id, with_traces=False))
    assert figures is not None and not figures.enough and figures.ppi is None
    from reports.review_figures import review_lines

    assert "needs 30 labelled goals" in "\n".join(review_lines(figures))


def _simulate(seed: int, theta: float, big_n: int, n: int, sens: float, spec: float
              ) -> tuple[float, float]:
    """One simulated run: true outcomes at rate `theta`, a judge with the given sensitivity
    and specificity, the review's stratified draw of `n`, a person who labels truly."""
    rng = random.Random(seed)
    truth = [rng.random() < theta for _ in range(big_n)]
    judge = [(rng.random() < sens) if y else (rng.random() > spec) for y in truth]
    sizes = {"broken": sum(judge), "held": big_n - sum(judge)}
    target = allocate(n, sizes, {})
    items = []
    for stratum, verdict in (("broken", True), ("held", False)):
        pool = [i for i in range(big_n) if judge[i] == verdict]
        items += [LabelledItem(stratum=stratum, human=truth[i], judge=verdict)
                  for i in rng.sample(pool, target[stratum])]
    est = ppi_asr(sizes, {"broken": True, "held": False}, items)
    assert est is not None and est.asr.low is not None and est.asr.high is not None
    return est.asr.low, est.asr.high


@pytest.mark.parametrize("theta,sens,spec", [(0.3, 0.8, 0.9), (0.1, 0.8, 0.9),
                                             (0.5, 0.95, 0.95)])
def test_ppi_interval_covers_the_true_rate_95_percent_of_the_time(
    theta: float, sens: float, spec: float
) -> None:
    runs, big_n, n = 1000, 300, 50
    cover, width, naive_cover = 0, 0.0, 0
    for seed in range(runs):
        low, high = _simulate(seed, theta, big_n, n, sens, spec)
        cover += low <= theta <= high
        width += high - low
    rng = random.Random(0)
    for _ in range(runs):  # the judge's own rate, for contrast: biased by its errors
        truth = [rng.random() < theta for _ in range(big_n)]
        rate = sum((rng.random() < sens) if y else (rng.random() > spec) for y in truth) / big_n
        naive_cover += abs(rate - theta) <= 1.96 * (rate * (1 - rate) / big_n) ** 0.5
    print(f"\nPPI coverage theta={theta} sens={sens} spec={spec} N={big_n} n={n}: "
          f"{cover / runs:.1%} over {runs} simulated runs, mean width {width / runs:.3f}; "
          f"the judge's own Wald interval covers {naive_cover / runs:.1%}")
    assert 0.93 <= cover / runs <= 0.97


def test_figures_appear_in_every_report(store: SQLBackend) -> None:
    run_id = record_synthetic_run(store, 80, seed=4)
    data = load_run(store, run_id, with_traces=False)
    assert data.review is None and "Reviewed by people" not in render_report(data)
    draw_sample(store, data, 40, seed=3)
    session = ReviewSession(store, run_id, "alice")
    _label_like_a_person(session, 32)
    item = session.items[0]
    session.label(item.attempt_id, "false" if item.panel else "true",
                  "<script>alert(1)</script>")
    data = load_run(store, run_id)
    assert data.review is not None and data.review.ppi is not None
    ppi_text = data.review.ppi.asr.text()
    html = render_report(data)
    assert 'id="review"' in html and "prediction-powered ASR" in html
    assert "Reviewed disagreements" in html and "looked closely" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    props = {p.get("name"): p.get("value")
             for p in ET.fromstring(render_junit(data)).iter("property")}
    assert props["ppi_asr_text"] == ppi_text and props["review_labelled"] == "32"
    sarif = json.loads(render_sarif(data))["runs"][0]["properties"]
    assert sarif["ppi_asr_text"] == ppi_text and sarif["review_reviewers"] == "alice"
    markdown = summary_markdown(RunSummary.parse(data.run.summary), review=data.review)
    assert "**Review:**" in markdown and "prediction\\-powered ASR" in markdown
    result = runner.invoke(app, ["runs", "show", run_id, "--db", store.url])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "prediction-powered ASR" in text and "panel vs reviewer on this run" in text


def test_terminal_mode_labels_and_reveals_after_the_answer(tmp_path: Path) -> None:
    from rich.console import Console

    backend = SQLBackend(f"sqlite:///{tmp_path / 't.db'}")
    run_id = record_synthetic_run(backend, 30, seed=2)
    draw_sample(backend, load_run(backend, run_id, with_traces=False), 10, seed=1)
    console = Console(record=True, width=120)
    attempts = AttemptRecord.__table__  # type: ignore[attr-defined]
    with backend.engine.begin() as conn:  # markup and control characters in every answer
        conn.execute(sa.update(attempts).where(attempts.c.run_id == run_id)
                     .where(attempts.c.response.is_not(None))
                     .values(response="[bold red]PWNED[/] \x1b[2J\x1b]0;title\x07 tail"))
    session = ReviewSession(backend, run_id, "carol")
    answers = iter(["x", "y", "", "n", "a note", "s", "", "q"])
    assert run_tui(session, console, ask=lambda _: next(answers)) == 3
    labels = [lab.label for lab in backend.list_review_labels(run_id)]
    assert labels == ["true", "false", "skip"]
    assert backend.list_review_labels(run_id)[1].note == "a note"
    out = console.export_text()
    assert out.count("the panel:") == 3 and "item 4 of 10" in out
    assert "[bold red]PWNED[/]" in out and "\x1b" not in out and "\x07" not in out
    backend.close()


def _request(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
             ) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:  # noqa: S310 (127.0.0.1 only)
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_page_needs_its_token_and_hides_the_verdicts(tmp_path: Path) -> None:
    backend = SQLBackend(f"sqlite:///{tmp_path / 's.db'}")
    run_id = record_synthetic_run(backend, 30, seed=2)
    draw_sample(backend, load_run(backend, run_id, with_traces=False), 10, seed=1)
    server = ReviewServer(ReviewSession(backend, run_id, "dan")).start()
    try:
        assert server.httpd.server_address[0] == "127.0.0.1"
        base = f"http://127.0.0.1:{server.port}"
        assert _request(base + "/")[0] == 403
        assert _request(base + "/wrong-token/")[0] == 403
        assert _request(base + "/" + server.token[:-1] + "/")[0] == 403
        assert _request(server.url, headers={"Host": "evil.example:80"})[0] == 403
        status, page = _request(server.url)
        assert status == 200
        html = page.decode()
        item = ReviewSession(backend, run_id, "dan").next_item()
        assert item is not None and f'data-attempt="{item.attempt_id}"' in html
        for judge in item.verdicts:  # nothing of the verdicts before the answer
            assert judge not in html
        assert "jailbroken" not in html and "broken" not in html.replace("broken down", "")
        body = json.dumps({"attempt_id": item.attempt_id, "label": "true"}).encode()
        assert _request(server.url + "label", data=body)[0] == 415  # not JSON: refused
        json_headers = {"Content-Type": "application/json"}
        assert _request(server.url + "label", data=body,
                        headers={**json_headers, "Origin": "http://evil.example"})[0] == 403
        assert _request(base + "/x/label", data=body, headers=json_headers)[0] == 403
        bad = json.dumps({"attempt_id": 10**9, "label": "true"}).encode()
        assert _request(server.url + "label", data=bad, headers=json_headers)[0] == 400
        status, reply = _request(server.url + "label", data=body, headers=json_headers)
        assert status == 200
        revealed = json.loads(reply)
        assert revealed["panel"] in ("broken", "held") and revealed["verdicts"]
        assert backend.list_review_labels(run_id)[0].attempt_id == item.attempt_id
    finally:
        server.stop()
        backend.close()


def test_export_round_trips_through_judges_validate(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'e.db'}"
    backend = SQLBackend(db)
    run_id = record_synthetic_run(backend, 40, seed=6)
    draw_sample(backend, load_run(backend, run_id, with_traces=False), 20, seed=1)
    given = _label_like_a_person(ReviewSession(backend, run_id, "erin"), 12)
    out = tmp_path / "labels.jsonl"
    result = runner.invoke(app, ["review", "export", run_id, "-o", str(out), "--db", db])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 12
    assert {int(x["id"].rsplit(":", 1)[1]): x["label"] for x in lines} == {
        k: 1 if v == "true" else 0 for k, v in given.items()}
    from judges.labels import load_labels

    assert len(load_labels(out).items) == 12
    result = runner.invoke(app, ["judges", "validate", "--labels", str(out), "--judge", "refusal",
                                 "--no-store", "--json", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
    assert len(figures["items"]) == 12
    backend.close()


def test_review_command_refuses_unknown_and_unfinished_runs(tmp_path: Path) -> None:
    from tracking import StatusEnum

    db = f"sqlite:///{tmp_path / 'u.db'}"
    backend = SQLBackend(db)
    run_id = record_synthetic_run(backend, 10, seed=1)
    backend.update_run(run_id, status=StatusEnum.RUNNING)
    result = runner.invoke(app, ["review", run_id, "--db", db, "--tui"])
    assert result.exit_code == 2 and "once it has finished" in " ".join(result.output.split())
    assert backend.list_review_draws(run_id) == []
    result = runner.invoke(app, ["review", "no-such-run", "--db", db, "--tui"])
    assert result.exit_code == 2 and "no run" in result.output
    result = runner.invoke(app, ["review", "export", run_id, "--db", db])
    assert result.exit_code == 2 and "usage" in result.output
    backend.close()


def test_the_page_says_when_the_sample_is_done(tmp_path: Path) -> None:
    backend = SQLBackend(f"sqlite:///{tmp_path / 'd.db'}")
    run_id = record_synthetic_run(backend, 40, seed=3)
    draw_sample(backend, load_run(backend, run_id, with_traces=False), 6, seed=1)
    session = ReviewSession(backend, run_id, "fay")
    server = ReviewServer(session, min_reviewed=5)
    try:
        _label_like_a_person(session, 6)
        html = server.page()
        assert "all 6 items answered" in html and "prediction-powered ASR" in html
        assert 'id="item"' not in html
    finally:
        server.httpd.server_close()
        backend.close()


def test_a_finished_review_republishes_the_runs_summary_artifact(
    prefect_api_url: str, tmp_path: Path,
) -> None:
    """Labels come after the run's end, so its summary artifact is published again, linked to
    the run's flow run, with the prediction-powered ASR (read back from the Prefect API)."""
    import asyncio

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.artifacts import publish_review_summary

    @flow(persist_result=False)
    def finished_scan() -> None:
        """Stands for the flow run that recorded the run."""

    state = finished_scan(return_state=True)
    flow_run_id = state.state_details.flow_run_id
    backend = SQLBackend(f"sqlite:///{tmp_path / 'republish.db'}")
    run_id = record_synthetic_run(backend, 60, seed=6)
    backend.update_run(run_id, prefect_flow_run_id=str(flow_run_id))
    draw_sample(backend, load_run(backend, run_id, with_traces=False), 40, seed=1)
    session = ReviewSession(backend, run_id, "alice")
    _label_like_a_person(session, 31)
    figures = session.figures(30)
    assert figures is not None and figures.ppi is not None

    async def artifacts() -> list:
        assert await publish_review_summary(backend, run_id, figures)
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))

    (artifact,) = asyncio.run(artifacts())
    assert artifact.type == "markdown" and artifact.key.startswith("siegeflow-summary-")
    assert "**Review:**" in artifact.data and "prediction\\-powered ASR" in artifact.data
    backend.close()
