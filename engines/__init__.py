"""Model runtimes behind one interface: a pipeline asks for a named model and gets arrays back."""
