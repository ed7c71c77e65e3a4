"""The one Kubernetes access layer of the operator, the gateway, `recluster dev` and the tests.

- `credentials`: where the API is and who we are, from the official
  `kubernetes` package's loaders (kubeconfig with exec plugins, in-cluster
  service account), re-read when the API answers 401;
- `client`: asynchronous JSON calls (aiohttp) for the operator and gateway,
  with list and watch;
- `sync`: the same calls, synchronous, for the node agent, `recluster dev`
  and the tests;
- `paths`, `errors`, `retry`: resource paths, the one error type, the one
  conflict-retry helper.
"""
