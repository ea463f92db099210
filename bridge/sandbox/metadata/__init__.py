"""Metadata both emulators publish, generated from the schema tables at run time."""
