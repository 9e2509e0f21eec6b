"""Training of the streams and the test protocol."""
