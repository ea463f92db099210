"""dualwrite: two-way sync between Dataverse and Finance and Operations."""
