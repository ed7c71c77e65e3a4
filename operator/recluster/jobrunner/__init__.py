"""What a Job pod runs: `recluster run-job`."""
