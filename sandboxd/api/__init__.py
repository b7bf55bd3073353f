"""The HTTP layer. Routes validate, call :class:`sandboxd.service.Service`, and shape responses."""
