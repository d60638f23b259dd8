"""Default energy budgets per scheduler account and for the fleet (``--budgets.file``)."""
