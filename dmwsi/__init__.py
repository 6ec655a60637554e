"""dmwsi: Device Management Web Services Interface server."""
