"""The engine: applies queued changes to the other system and implements the admin controls."""
