"""A real Kubernetes control plane on this machine, and a node agent in place of the kubelet.

`recluster dev` and the integration tests run on it (see docs/localkube.md):
binaries.py builds the upstream components from the Go module proxy,
controlplane.py runs them, nodeagent.py runs the Pods scheduled to its Node.
"""
