"""AZR-style verification: validate proposed tasks and check answers, with trusted-side comparison."""
