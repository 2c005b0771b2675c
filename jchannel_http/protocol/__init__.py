"""The protocol core: frames, sessions, delivery, calls, streams and client rules, without I/O."""
