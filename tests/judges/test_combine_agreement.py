"""Combination rules (incl. ties and errors) and kappa against hand-computed values."""

from __future__ import annotations

import pytest

from judges import (
    Verdict,
    cohen_kappa,
    combine,
    combined_score,
    fleiss_kappa,
    judge_agreement,
    rows_by_judge,
)


def v(success, score=None, error=None, name="j"):
    return Verdict(judge=name, success=success, score=score, raw=None, error=error)


YES, NO, ERR = v(True, 1.0), v(False, 0.0), v(None, error="unparseable: x")


@pytest.mark.parametrize("verdicts,rule,expected", [
    ([YES, NO], "any", True),
    ([NO, NO], "any", False),
    ([YES, NO], "majority", False),  # a tie is not a success
    ([YES, YES, NO], "majority", True),
    ([YES, NO, NO], "majority", False),
    ([YES, NO, YES, NO], "majority", False),
    ([YES, YES], "all", True),
    ([YES, NO], "all", False),
    ([YES, ERR], "all", True),  # errors are ignored
    ([YES, ERR, NO], "majority", False),
    ([YES, ERR, ERR], "majority", True),
    ([ERR, ERR], "any", None),
    ([], "majority", None),
])
def test_combine(verdicts, rule, expected):
    assert combine(verdicts, rule) is expected


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown combine rule 'most'"):
        combine([YES], "most")


def test_combined_score():
    assert combined_score([v(True, 1.0), v(False, 0.5), ERR]) == 0.75
    assert combined_score([v(True), v(False)]) is None
    assert combined_score([ERR]) is None


def test_cohen_kappa_hand_computed():
    # 10 items: both yes 4, a-yes/b-no 1, a-no/b-yes 2, both no 3.
    # p_o = 0.7; p_yes = 0.5 * 0.6 = 0.30, p_no = 0.5 * 0.4 = 0.20, p_e = 0.5 -> kappa = 0.4
    a = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    b = [1, 1, 1, 1, 0, 1, 1, 0, 0, 0]
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa([1, 0], [0, 1]) == pytest.approx(-1.0)


def test_cohen_kappa_degenerate_and_errors():
    assert cohen_kappa([True] * 5, [True] * 5) == 1.0  # chance agreement 1: defined as 1.0
    assert cohen_kappa([True, True], [True, False]) == 0.0
    with pytest.raises(ValueError):
        cohen_kappa([], [])
    with pytest.raises(ValueError):
        cohen_kappa([1], [1, 0])


def test_fleiss_kappa_hand_computed():
    # 4 items, 3 raters, categories (yes, no).
    # P_i = 1, 1/3, 1/3, 1 -> P = 2/3; p_yes = 6/12 -> P_e = 0.5 -> kappa = 1/3
    matrix = [[3, 0], [2, 1], [1, 2], [0, 3]]
    assert fleiss_kappa(matrix) == pytest.approx(1 / 3)
    assert fleiss_kappa([[3, 0], [0, 3]]) == 1.0
    assert fleiss_kappa([[3, 0], [3, 0]]) == 1.0  # degenerate: everyone said yes


def test_fleiss_kappa_rejects_bad_matrices():
    for bad in ([], [[3, 0], [2, 0]], [[1, 0]], [[2, 0], [1, 1, 0]], [[3, -1]]):
        with pytest.raises(ValueError):
            fleiss_kappa(bad)


def test_judge_agreement_pairwise_and_fleiss_with_missing():
    by_judge = {
        "a": [True, True, False, False, True],
        "b": [True, False, False, None, True],  # item 3 undecided by b
        "c": {0: v(True, 1.0), 1: v(True), 2: v(None, error="model: down"), 3: v(False),
              4: {"success": True, "error": None}},
    }
    result = judge_agreement(by_judge)
    assert result["judges"] == ["a", "b", "c"]
    ab = result["pairwise"]["a|b"]
    # a vs b on items 0,1,2,4: a = T T F T, b = T F F T -> p_o = 3/4;
    # p_e = (3/4 * 2/4) + (1/4 * 2/4) = 1/2 -> kappa = 0.5
    assert (ab["n"], ab["observed_agreement"], ab["kappa"]) == (4, 0.75, pytest.approx(0.5))
    ac = result["pairwise"]["a|c"]
    assert ac["n"] == 4 and ac["kappa"] == 1.0  # items 0,1,3,4 agree fully
    fleiss = result["fleiss"]
    assert fleiss["n"] == 3  # items 0, 1, 4 decided by all three
    # rows (T,F counts): [3,0], [2,1], [3,0] -> P = (1 + 1/3 + 1)/3 = 7/9;
    # p_T = 8/9 -> P_e = 64/81 + 1/81 = 65/81 -> kappa = (63/81 - 65/81)/(16/81) = -1/8
    assert fleiss["kappa"] == pytest.approx(-0.125)


def test_judge_agreement_two_judges_and_no_overlap():
    result = judge_agreement({"x": [True, None], "y": [None, False]})
    assert result["fleiss"] is None
    assert result["pairwise"]["x|y"] == {"judges": ["x", "y"], "n": 0, "kappa": None,
                                         "observed_agreement": None}


def test_rows_by_judge_from_pipeline_rows():
    rows = [
        {"result_id": "r1", "prompt_hash": "h1",
         "judges": {"refusal": {"success": True, "score": 1.0, "error": None},
                    "harmbench": {"success": None, "score": None, "error": "model: x"}}},
        {"result_id": "r1", "prompt_hash": "h2",
         "judges": {"refusal": {"success": False, "score": 0.0, "error": None},
                    "harmbench": {"success": False, "score": 0.0, "error": None}}},
    ]
    table = rows_by_judge(rows)
    assert set(table) == {"refusal", "harmbench"} and ("r1", "h2") in table["refusal"]
    pair = judge_agreement(table)["pairwise"]["harmbench|refusal"]
    assert pair["n"] == 1 and pair["kappa"] == 1.0
