"""The operator: informers, a work queue and the TriggerReconciler, a thin shell around core."""
