"""Headlines cite the judges: ASR with n and its 95% interval, the panel with its validated
agreement (store first, then the shipped figure) or "not validated", and the refusal-only
warning — in the terminal summary, the runs list and the Prefect summary artifact."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from cli.output import print_runs, print_summary
from judges.citation import cite, cite_run, panel_digest, panel_key, store_lookup
from reports.artifacts import summary_markdown
from reports.figures import asr_text
from tracking import RunSummary, get_backend

SUMMARY = RunSummary.parse(
    {"run_id": "r1", "goals_total": 12, "successful": 4, "failed": 6,
     "errors": {"agent": 1, "framework": 1, "total": 2}, "asr": 0.4,
     "categories": {"Malware": {"goals": 5, "successful": 1, "failed": 3, "errors": 1,
                                "asr": 0.25}}})


def _render(fn, *args) -> str:
    console = Console(record=True, width=320)
    fn(console, *args)
    return console.export_text()


def test_asr_text_has_rate_interval_and_n() -> None:
    assert asr_text(4, 10) == "40.0% [16.8%–68.7%] (4/10 judged goals)"
    assert asr_text(0, 0) == "n/a (0 judged goals)"


def test_panel_key_is_canonical() -> None:
    a = panel_key([{"name": "refusal"}, {"name": "offline", "options": {}}], "any")
    b = panel_key(["offline", {"name": "refusal", "label": None}], "any")
    assert a == b
    assert panel_key(["offline"], "any") == panel_key(["offline"], "all")  # one judge: no rule
    assert panel_key(["offline", "refusal"], "any") != panel_key(["offline", "refusal"], "all")


def test_unvalidated_and_refusal_only_panels_say_so() -> None:
    c = cite([{"name": "harmbench", "label": "hb2", "model": {"model": "openai/x"}}], "any")
    assert not c.validated and c.text() == "hb2: not validated against human labels"
    refusal = cite(["refusal"], "majority")  # shipped figure, refusal-only warning
    assert "non-refusal, not harm" in refusal.text()
    mixed = cite(["refusal", {"name": "harmbench", "model": {"model": "m"}}], "any")
    assert not mixed.refusal_only


def test_shipped_measures_are_what_the_judges_say() -> None:
    """`runs list` reads each shipped judge's `measures` from a table (not importing the judges):
    the table must match the registered classes, and a plugin's name still asks the registry."""
    from judges.citation import SHIPPED_MEASURES, measures
    from judges.registry import SHIPPED, get_judge, list_judges

    shipped = {info.name for info in list_judges()
               if get_judge(info.name).__module__.split(".")[1] in SHIPPED}
    assert {name: get_judge(name).measures for name in shipped} == SHIPPED_MEASURES
    assert measures("judges.refusal:RefusalJudge") == "non-refusal"  # by path: the registry
    assert measures("judges.classifiers:HarmBenchJudge") == "harm"
    assert measures("no-such-judge") == "unknown"


def test_store_validation_wins_over_the_shipped_figure(tmp_path: Path) -> None:
    backend = get_backend(f"sqlite:///{tmp_path}/v.db")
    key = panel_key(["refusal", "offline"], "any")
    assert not cite(["refusal", "offline"], "any", store_lookup(backend)).validated
    backend.save_validation(panel_key=panel_digest(key), panel={"k": 1}, source="mine.csv",
                            labels_sha256="0" * 64, n=50, errors=2, accuracy=0.84,
                            kappa=0.66, figures={})
    c = cite(["offline", "refusal"], "any", store_lookup(backend))
    assert c.text() == ("offline + refusal (any): 84% agreement with human labels (κ 0.66), "
                        "n=50, mine.csv")
    backend.save_validation(panel_key=panel_digest(key), panel={"k": 1}, source="again.csv",
                            labels_sha256="1" * 64, n=60, errors=0, accuracy=0.9, kappa=0.8,
                            figures={})
    assert cite(["offline", "refusal"], "any", store_lookup(backend)).n == 60  # latest kept


def test_terminal_summary_and_artifact_carry_n_interval_and_judges() -> None:
    citation = cite(["refusal"], "majority")
    text = _render(print_summary, SUMMARY, citation)
    assert "40.0% [16.8%–68.7%] (4/10 judged goals)" in text
    assert "25.0% [4.6%–69.9%] (1/4 judged goals)" in text  # per category too
    assert "judged by" in text and "non-refusal, not harm" in text
    markdown = summary_markdown(SUMMARY, citation)
    assert "40.0% [16.8%–68.7%] (4/10 judged goals)" in markdown
    assert "25.0% [4.6%–69.9%] (1/4 judged goals)" in markdown
    assert "**Judged by:** refusal" in markdown and "not harm" in markdown.replace("\\", "")


def test_runs_list_names_the_panel(tmp_path: Path) -> None:
    backend = get_backend(f"sqlite:///{tmp_path}/r.db")
    run_id = backend.create_run(attack_type="suite", config={}, parameters={
        "judges": {"judges": [{"name": "harmbench", "options": {"model": {"model": "m"}}}],
                   "rule": "any"}})
    backend.update_run(run_id, summary=SUMMARY)
    text = _render(print_runs, backend.list_runs(), store_lookup(backend))
    assert "40.0% [16.8%–68.7%] (4/10 judged goals)" in text
    assert "harmbench: not validated" in text
    assert cite_run(backend.get_run(run_id).parameters).panel == "harmbench"


def test_html_junit_sarif_name_the_judges_and_the_asr_n(tmp_path: Path) -> None:
    """Every report format cites the panel that decided the ASR ("not validated" here: no
    validation of refusal + harmbench under `any` is stored or shipped) next to the ASR's n."""
    import json
    import re
    import xml.etree.ElementTree as ET

    from reports.html import render_report
    from reports.junit import render_junit
    from reports.load import load_run
    from reports.sarif import render_sarif
    from tests.reports.synthetic import record_synthetic_run

    backend = get_backend(f"sqlite:///{tmp_path}/s.db")
    data = load_run(backend, record_synthetic_run(backend, 12))
    expected = "refusal + harmbench (any): not validated against human labels"
    assert data.citation is not None and data.citation.text() == expected
    o = data.goals
    judged = sum(1 for g in o if g.label in ("broken", "held"))
    html = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render_report(data)))
    assert f"Judged by {expected}" in html and f"{judged} judged goals (n)" in html
    props = {p.get("name"): p.get("value")
             for p in ET.fromstring(render_junit(data)).iter("property")}
    assert props["judged_by"] == expected
    assert props["asr_headline"].endswith(f"/{judged} judged goals)")
    sarif = json.loads(render_sarif(data))["runs"][0]["properties"]
    assert sarif["judgedBy"]["text"] == expected and sarif["judgedBy"]["validated"] is False
    assert sarif["asrN"] == judged and "judged goals" in sarif["asrText"]
