"""The `siegeflow` exit codes, defined once: 0 ok, 1 run failed, 2 bad input, 3 ASR above
`--fail-over` (or a regression with `--fail-on-regression`), 4 the run tested too little (every
goal a target error, or more than `--max-error-rate`)."""

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_ASR_OVER, EXIT_ERRORS = 0, 1, 2, 3, 4
