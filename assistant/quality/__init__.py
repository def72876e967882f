"""Quality monitoring, total cost and the go / no-go decision gate, measured from records."""
