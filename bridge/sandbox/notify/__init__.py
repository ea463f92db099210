"""Change notifications: Dataverse webhooks (``dataverse``) and F&O data events (``fno``)."""
