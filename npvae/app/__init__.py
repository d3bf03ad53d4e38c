"""The application around the library: run folders and checkpoints, the command line, figures."""
