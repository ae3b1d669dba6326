"""The figures shipped in judges/data/validations.json, as a run's correction reads them."""

from __future__ import annotations

from judges.corrected import over_refusal_correction


def test_the_shipped_detector_validation_uses_xstest_safe_prompts_for_a_benign_set() -> None:
    """The shipped over-refusal entry breaks XSTest down by model file and prompt kind under
    one name: a benign control set is corrected with the safe prompts' counts, never with
    whichever breakdown row happened to come last."""
    from tracking import OverRefusal

    block = over_refusal_correction({"benign": {"source": "jbb:benign"}},
                                    OverRefusal(prompts=100, answered=90, refused=10))
    assert block is not None and block.stratum == "xstest:safe"
    unsafe = over_refusal_correction({"benign": {"source": "xstest:unsafe"}},
                                     OverRefusal(prompts=100, answered=90, refused=10))
    assert unsafe is not None and unsafe.stratum == "xstest:contrast"
    assert block.validation_n == 1250 and unsafe.validation_n == 1000  # safe / contrast answers
