"""Review of a run's own verdicts by a person: a tool-drawn sample of the run's judged goals,
labelled on a local page or in the terminal, and what the labels give — the panel's agreement
with people on this run and a prediction-powered ASR (docs/review.md). Prefect-free."""
