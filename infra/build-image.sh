#!/usr/bin/env bash
# Build the media-node image from the repository root, push it to ECR and print its URI.
#
#   infra/build-image.sh REGION REPOSITORY TAG
#
# Creates the ECR repository if it is missing. Needs docker (or a docker-compatible CLI set in
# DOCKER) and AWS credentials. Progress goes to stderr; stdout is only the image URI, so
#   make deploy MEDIA_NODE_IMAGE_URI=$(make -s image)
# works.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 REGION REPOSITORY TAG" >&2
  exit 2
fi
region=$1
repository=$2
tag=$3
docker=${DOCKER:-docker}

for tool in aws "$docker"; do
  command -v "$tool" >/dev/null || { echo "$tool not found on PATH" >&2; exit 1; }
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
account=$(aws sts get-caller-identity --query Account --output text)
registry="${account}.dkr.ecr.${region}.amazonaws.com"
image="${registry}/${repository}:${tag}"

if ! aws ecr describe-repositories --region "$region" --repository-names "$repository" \
  >/dev/null 2>&1; then
  echo "creating ECR repository $repository in $region" >&2
  aws ecr create-repository --region "$region" --repository-name "$repository" \
    --image-scanning-configuration scanOnPush=true >/dev/null
fi

aws ecr get-login-password --region "$region" \
  | "$docker" login --username AWS --password-stdin "$registry" >&2

# Fargate runs the task as X86_64 (infra/media-node.yaml), whatever machine builds it.
"$docker" build --platform linux/amd64 -f "$root/media_node/Dockerfile" -t "$image" "$root" >&2
"$docker" push "$image" >&2

echo "$image"
