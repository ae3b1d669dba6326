"""The `siegeflow` commands, one module per group; importing a module registers its commands
on `cli.app.app` (in the order `--help` lists them)."""
