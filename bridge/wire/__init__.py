"""Wire formats shared by the bridge's clients and the emulators (pure: no I/O, nothing else of the
bridge imported), so both sides of a ``$batch`` speak through one implementation."""
