"""The `siegeflow` exit codes, defined once: 0 ok, 1 run failed, 2 bad input, 3 ASR above
`--fail-over` (or a regression with `--fail-on-regression`)."""

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_ASR_OVER = 0, 1, 2, 3
