"""The review's figures as each medium shows them: plain lines (terminal, Markdown), properties
(JUnit, SARIF) and an HTML block. Kept apart so each report gains them by one small insertion.

Lines and properties are numbers and reviewer names only; the HTML block also lists reviewed
disagreements with their texts, escaped (`reports.text.html_escape`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reports.text import html_escape

if TYPE_CHECKING:
    from reports.review.items import ReviewFigures


def review_lines(review: ReviewFigures | None) -> list[str]:
    """What people's review of this run's verdicts gives, one figure per line."""
    if review is None:
        return []
    who = ", ".join(review.reviewers) or "nobody yet"
    lines = [f"reviewed by people: {review.labelled} of {review.drawn} sampled goals labelled "
             f"({review.skipped} skipped; reviewers: {who})"]
    if not review.enough or review.ppi is None or review.agreement is None:
        lines.append(f"prediction-powered ASR: needs {review.min_reviewed} labelled goals "
                     f"(`siegeflow review {review.run_id}`)")
    else:
        p, a = review.ppi, review.agreement
        lines.append(f"prediction-powered ASR {p.asr.text()} (judge {p.judge_rate:.1%} on "
                     f"{p.big_n} goals, correction {p.correction:+.1%} from {p.n} labels)")
        lines.append(f"panel vs reviewer on this run: accuracy {a.accuracy.text()}, "
                     f"κ {a.kappa.kappa_text()}, sensitivity {a.sensitivity.text()}, "
                     f"specificity {a.specificity.text()} (n={a.n}, design-weighted)")
    for pair in review.between:
        kappa = "n/a" if pair.kappa is None else f"{pair.kappa:.2f}"
        lines.append(f"reviewers {pair.a} vs {pair.b}: κ {kappa} on {pair.n} goals both "
                     f"labelled ({pair.agree} agree)")
    return lines


def review_properties(review: ReviewFigures | None) -> dict[str, Any]:
    """Machine-readable review figures (JUnit property values are their `str`)."""
    if review is None:
        return {}
    props: dict[str, Any] = {"review_sampled": review.drawn, "review_labelled": review.labelled,
                             "review_reviewers": ",".join(review.reviewers)}
    if review.enough and review.ppi is not None and review.agreement is not None:
        p, a = review.ppi, review.agreement
        props.update({
            "ppi_asr": round(p.asr.value or 0.0, 6),
            "ppi_asr_ci95": [round(p.asr.low or 0.0, 6), round(p.asr.high or 0.0, 6)],
            "ppi_asr_text": p.asr.text(),
            "review_accuracy": a.accuracy.value, "review_kappa": a.kappa.value,
            "review_sensitivity": a.sensitivity.value, "review_specificity": a.specificity.value,
        })
    return props


def _people(share: float) -> str:
    if share in (0.0, 1.0):
        return "broken" if share else "held"
    return f"split: {share:.0%} say broken"


def review_html(review: ReviewFigures | None) -> str:
    """The report's section on people's review of this run (empty when there was none)."""
    if review is None:
        return ""
    e = html_escape
    lines = "".join(f"<li>{e(line, 600)}</li>" for line in review_lines(review))
    rows = "".join(
        f"<tr><td>{e(d.item.goal, 300)}</td><td>{e(d.item.response, 600)}</td>"
        f"<td>{'broken' if d.item.panel else 'held'}</td>"
        f"<td>{_people(d.human)}</td>"
        f"<td>{e('; '.join(d.notes), 400)}</td></tr>"
        for d in review.disagreements
    )
    table = (
        "<h3>Reviewed disagreements</h3><table class=\"small\"><thead><tr><th>goal</th>"
        "<th>target's answer</th><th>panel</th><th>person</th><th>notes</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>" if rows else "")
    return ('<section id="review"><h2>Reviewed by people</h2><ul>' + lines + "</ul>"
            '<p class="note">A random sample of this run\'s goals, drawn by siegeflow within '
            "each verdict, labelled by people; the prediction-powered ASR corrects the judges' "
            "rate by the errors measured on it (docs/review.md).</p>" + table + "</section>")
