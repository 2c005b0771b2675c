"""What the server shows in a notebook: the bootstrap output and the cell log."""
