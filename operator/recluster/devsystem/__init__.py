"""`recluster dev`: the whole system on one machine, no cluster needed."""
