"""Domain logic between the SOAP services and the DM server: jobs."""
