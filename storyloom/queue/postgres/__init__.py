"""The job store on PostgreSQL: the dialect of the shared statements, the drivers and the stores."""
