"""The shipped artefacts: the Helm chart, the plain manifests, the Dockerfiles."""
