"""Command-line tools: the doctor and the demo."""
