#!/bin/sh
# The plain server image creates no namespace; Continuum's lives as long as the retention says.
set -eu
temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1 \
    || temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
echo "namespace $NAMESPACE ready"
