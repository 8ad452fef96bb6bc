#!/usr/bin/env bash
# make docker-check: build the CPU image of docker/Dockerfile and test it on this machine.
#
#  1. a Docker daemon: the one that answers (DOCKER_HOST or the default socket), else one
#     started here (root: dockerd without a bridge network, its own data root under
#     SCENE_PE_CACHE, stopped again at the end; Debian's docker.io installed if missing);
#  2. the base image: BASE_IMAGE if present, else local/debian:<suite> made from Debian's
#     packages (mmdebstrap + docker import; no registry needed), else docker pull;
#  3. the CPU image (ME_CUDA=0), with the host's torch wheel offered through a wheelhouse
#     served on 127.0.0.1 (builds use the host network) when pip can fetch it here;
#  4. in containers, as the image's user, with /data and /runs bind-mounted: imports, the CPU
#     part of tools/gpu_check.py (compared with the host's), a slice of the test suite, and
#     generate -> preprocess -> train 2 steps -> predict on generated rooms; then every file
#     written to the mounts must belong to the image's user (the host user when not root).
# Prints each step's seconds and the image's size. Knobs (environment):
#   IMAGE=scene-pe:cpu  BASE_IMAGE=local/debian:bookworm  SCENE_PE_CACHE=~/.cache/scene_pe
#   WHEEL_PORT=48731  KEEP=1 (keep the work folder)  TEST_SLICE="tests/test_x.py ..."
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
IMAGE="${IMAGE:-scene-pe:cpu}"
BASE_IMAGE="${BASE_IMAGE:-local/debian:bookworm}"
CACHE="${SCENE_PE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scene_pe}"
WHEEL_PORT="${WHEEL_PORT:-48731}"
TEST_SLICE="${TEST_SLICE:-tests/test_minkowski.py tests/test_kernels.py tests/test_voxelize.py tests/test_export.py tests/test_eval_instance.py}"
PY="$here/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"

say() { echo "[docker-check] $*"; }
die() { echo "[docker-check] FAILED: $*" >&2; exit 1; }
names=(); secs=()
step() {  # step NAME COMMAND...: run, time, stop the check on failure
  local name="$1" t0 rc=0; shift
  say "== $name"
  t0=$(date +%s.%N)
  "$@" || rc=$?
  names+=("$name"); secs+=("$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")")
  [ "$rc" = 0 ] || die "$name (exit $rc)"
}
cleanup=()
on_exit() { for c in "${cleanup[@]}"; do eval "$c" || true; done; }
trap on_exit EXIT
is_root() { [ "$(id -u)" = 0 ]; }
cores() { env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc; }  # nproc obeys OMP_NUM_THREADS (make sets 1)
apt_install() {
  if ! is_root || ! command -v apt-get >/dev/null; then die "$* missing: install it (apt-get install $*)"; fi
  say "installing $* (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# 1. A daemon.
command -v docker >/dev/null || apt_install docker.io
start_daemon() {
  command -v dockerd >/dev/null || apt_install docker.io
  is_root || die "no Docker daemon answers and starting one needs root: start Docker, or set DOCKER_HOST"
  local root="$CACHE/docker"
  mkdir -p "$root"
  export DOCKER_HOST="unix://$root/docker.sock"
  # No bridge network (none can be made on these machines, and none is needed): builds and
  # containers use the host's network, i.e. only what the host reaches.
  dockerd --bridge=none --iptables=false --ip-forward=false --data-root "$root/data" \
    --exec-root "$root/exec" --pidfile "$root/dockerd.pid" --host "$DOCKER_HOST" \
    >"$root/dockerd.log" 2>&1 &
  local pid=$!
  cleanup+=("kill $pid; wait $pid")
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && return 0; kill -0 $pid 2>/dev/null || break; sleep 0.5; done
  tail -20 "$root/dockerd.log" >&2
  die "dockerd did not start (log: $root/dockerd.log)"
}
if docker info >/dev/null 2>&1; then say "using the running Docker daemon"; else step "start dockerd" start_daemon; fi
# Docker's classic builder unless BuildKit's client (buildx) is there: a 23+ client without
# buildx refuses BuildKit builds, and the Dockerfile needs nothing that only BuildKit has.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

# 2. The base image.
make_base() {
  local suite="${BASE_IMAGE#local/debian:}" tar
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap
  tar="$(mktemp --suffix=.tar)"; cleanup+=("rm -f $tar")
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,python3,python3-venv "$suite" "$tar"
  docker import "$tar" "$BASE_IMAGE" >/dev/null
}
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base image $BASE_IMAGE present"
elif [[ "$BASE_IMAGE" == local/debian:* ]]; then
  step "base image from Debian packages" make_base
else
  step "pull $BASE_IMAGE" docker pull "$BASE_IMAGE"
fi

# 3. The CPU image. torch: the host's own wheel when pip can fetch it here (a CPU build where
# the host has one: 0.2 GB instead of PyPI's CUDA build and its 3 GB of nvidia libraries).
# shellcheck disable=SC2016  # the literal ${TORCH_SPEC:-...} of setup_env.sh is matched
torch_spec="$(sed -n 's/^TORCH_SPEC="${TORCH_SPEC:-\(.*\)}"$/\1/p' tools/setup_env.sh)"
[ -n "$torch_spec" ] || die "cannot read TORCH_SPEC's default from tools/setup_env.sh"
wheelhouse="$CACHE/docker-wheelhouse"
mkdir -p "$wheelhouse"
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg ME_CUDA=0 --build-arg "MAX_JOBS=$(cores)")
if "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$wheelhouse" "$torch_spec" >/dev/null 2>&1; then
  python3 -m http.server "$WHEEL_PORT" --bind 127.0.0.1 --directory "$wheelhouse" >/dev/null 2>&1 &
  cleanup+=("kill $!")
  build_args+=(--build-arg "PIP_FIND_LINKS=http://127.0.0.1:$WHEEL_PORT/")
  say "wheelhouse for the build: $(cd "$wheelhouse" && ls) on port $WHEEL_PORT"
fi
# The host's own certificate authorities (a proxy's, for HTTPS to the package index).
find docker/ca-certificates -name '*.crt' -delete
for crt in /usr/local/share/ca-certificates/*.crt; do [ -f "$crt" ] && cp "$crt" docker/ca-certificates/; done
uid=1000 gid=1000
is_root || { uid="$(id -u)"; gid="$(id -g)"; }
build_args+=(--build-arg "USER_UID=$uid" --build-arg "USER_GID=$gid")
build_image() {  # the build's steps as they start (the whole log in $CACHE/docker-build.log)
  local log="$CACHE/docker-build.log"
  if ! docker build --network host -f docker/Dockerfile -t "$IMAGE" "${build_args[@]}" . 2>&1 | tee "$log" \
      | grep --line-buffered -oE '^Step [0-9]+/[0-9]+ : (FROM|COPY|RUN).{0,80}'; then
    tail -40 "$log" >&2
    return 1
  fi
}
step "build $IMAGE" build_image
size="$(docker image inspect -f '{{.Size}}' "$IMAGE")"

# 4. In containers.
work="$(mktemp -d "${TMPDIR:-/tmp}/scene_pe-docker-check.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then say "work folder kept: $work"; else cleanup+=("rm -rf $work"); fi
mkdir -p "$work/data" "$work/runs"
is_root && chown "$uid:$gid" "$work/data" "$work/runs"
in_image() { docker run --rm --network host -v "$work/data:/data" -v "$work/runs:/runs" "$IMAGE" "$@"; }
step "imports" in_image python -c "
import torch, MinkowskiEngine as ME, open3d, scene_pe, os
print(f'torch {torch.__version__}, MinkowskiEngine {ME.__version__} (CUDA: {ME.is_cuda_available()}),',
      f'open3d {open3d.__version__}, scene_pe {scene_pe.__version__}, uid {os.getuid()}')"
step "gpu_check (CPU part) in the image" in_image python tools/gpu_check.py --json /runs/gpu_check.json
step "gpu_check (CPU part) on the host" "$PY" tools/gpu_check.py --json "$work/host_gpu_check.json"
same_checks() {
  python3 - "$work/runs/gpu_check.json" "$work/host_gpu_check.json" <<'EOF'
import json, sys
image, host = (json.load(open(p)) for p in sys.argv[1:])
def verdicts(r):  # every check's pass/fail, without the figures that vary by machine
    return {name: c["ok"] for name, c in r["checks"].items()}
for name, c in image["checks"].items():
    print(f"  {name}: image {c['detail']}\n  {' ' * len(name)}  host  {host['checks'][name]['detail']}")
sys.exit(verdicts(image) != verdicts(host) or not all(verdicts(image).values()))
EOF
}
step "gpu_check: image and host agree" same_checks
# shellcheck disable=SC2086
step "test slice" in_image python -m pytest -q -p no:cacheprovider $TEST_SLICE
step "generate rooms" in_image python tools/make_synthetic.py --out /data/scannet --train 2 --val 1 --test 1 \
  --min-vertices 20000 --max-vertices 30000 --no-progress
step "preprocess" in_image python tools/preprocess.py --scannet-root /data/scannet \
  --out /data/scannet_preprocessed --split all
step "train 2 steps" in_image python tools/train.py configs/synthetic_probabilistic.yaml \
  data.root=/data/scannet_preprocessed run_dir=/runs train.max_steps=2 --no-progress
val_scene="$(head -1 "$work/data/scannet/scannetv2_val.txt")"
step "predict" in_image python tools/predict.py "/data/scannet/scans/$val_scene" \
  --checkpoint /runs/synthetic_probabilistic/last.pth --out /runs/predict --no-progress
owners() {
  local n_files strangers
  n_files="$(find "$work/data" "$work/runs" -mindepth 1 | wc -l)"
  strangers="$(find "$work/data" "$work/runs" -mindepth 1 \( ! -uid "$uid" -o ! -gid "$gid" \) | head -5)"
  [ -f "$work/runs/predict/$val_scene.json" ] || { echo "no prediction written"; return 1; }
  [ -s "$work/runs/predict/$val_scene.html" ] || { echo "no viewer page written"; return 1; }
  [ -z "$strangers" ] || { echo "not owned by $uid:$gid: $strangers"; return 1; }
  echo "$n_files files and folders written to the mounts, all owned by $uid:$gid"
}
step "outputs owned by uid $uid" owners

say "image $IMAGE: $(python3 -c "print(f'{$size / 1e9:.2f} GB')")"
for i in "${!names[@]}"; do printf '[docker-check] %8ss  %s\n' "${secs[$i]}" "${names[$i]}"; done
say "passed"
