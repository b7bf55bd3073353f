"""The in-container runner: a fork-server and the child set-up that runs before model code.

Everything in this package runs *inside* the sandbox image. It may import only the standard
library and ``pyseccomp``. The daemon imports :mod:`sandboxd.runner.protocol` to speak the same
wire format, and nothing else from here.
"""
