# Two targets:
#
# * the CPU image (the default, last stage): `docker build -t edgebench . && docker run --rm
#   -v "$PWD/reports:/app/reports" edgebench` runs the embedded demo study (`edgebench run`) and
#   leaves the report in ./reports.
# * `jetson-agent`: the device side for a Jetson, on an L4T base chosen by a build argument
#   (built on the Jetson itself, arm64). An SSH server the host reaches like any SSH device; the
#   host pushes the agent and runs it with this image's python3 (numpy, psutil, TensorRT from the
#   base). See docs/JETSON.md ("Agent in a container"):
#     docker build --target jetson-agent --build-arg L4T_BASE=nvcr.io/nvidia/l4t-jetpack:r36.4.0 \
#         -t edgebench-agent:jetson .

# The L4T base must match the board's L4T release (`cat /etc/nv_tegra_release`): r36.x is
# JetPack 6 (TensorRT 10), r35.x JetPack 5 (TensorRT 8.5).
ARG L4T_BASE=nvcr.io/nvidia/l4t-jetpack:r36.4.0

# ---------------------------------------------------------------------------------- jetson-agent
FROM ${L4T_BASE} AS jetson-agent
# Optional: an onnxruntime-gpu wheel for Jetson (a URL or a pip requirement), for the
# onnxruntime backend with CUDA/TensorRT execution providers. Empty: TensorRT only.
ARG ONNXRUNTIME_PIP=""
# The TensorRT backend takes device memory and streams from torch.cuda: give the PyTorch wheel for
# your JetPack here (a URL or a pip requirement) to measure TensorRT engines in this container.
ARG TORCH_PIP=""
ARG AGENT_USER=edgebench
ENV EDGEBENCH_AGENT_USER=${AGENT_USER} EDGEBENCH_SSH_PORT=2222 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-server python3 python3-numpy python3-psutil python3-pip \
    && rm -rf /var/lib/apt/lists/*
RUN if [ -n "${ONNXRUNTIME_PIP}" ]; then pip3 install "${ONNXRUNTIME_PIP}"; fi \
    && if [ -n "${TORCH_PIP}" ]; then pip3 install "${TORCH_PIP}"; fi
# What the agent needs must import; TensorRT's Python module comes with l4t-jetpack/l4t-tensorrt
# bases (others: edgebench then reports the tensorrt runtime as unavailable, with the reason).
RUN python3 -c "import numpy, psutil; print('numpy', numpy.__version__, 'psutil', psutil.__version__)" \
    && (python3 -c "import tensorrt; print('tensorrt', tensorrt.__version__)" || echo "note: no tensorrt module in ${L4T_BASE}")
RUN useradd --create-home --shell /bin/bash "${AGENT_USER}" \
    && usermod -aG video "${AGENT_USER}" \
    && mkdir -p /etc/edgebench-ssh /run/sshd
COPY docker/jetson-agent-entrypoint.sh /usr/local/bin/edgebench-jetson-agent
EXPOSE 2222
VOLUME ["/etc/edgebench-ssh"]
ENTRYPOINT ["/usr/local/bin/edgebench-jetson-agent"]

# ------------------------------------------------------------------------------- cpu (default)
FROM python:3.11-slim AS cpu

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 EDGEBENCH_CACHE_DIR=/app/.cache
WORKDIR /app

# torch and torchvision pinned to the releases the project is tested with; the rest from pyproject.toml.
RUN pip install "torch==2.14.1" "torchvision==0.29.1"
COPY pyproject.toml README.md ./
COPY edgebench ./edgebench
COPY devices ./devices
RUN pip install -e . && python -c "import edgebench.cli.main"

# Train and cache the demo model at build time, so `docker run` starts measuring at once.
RUN python -c "from edgebench.subject.zoo import load_subject, ModelConfig, DataConfig; load_subject(ModelConfig(), DataConfig())"

VOLUME ["/app/reports"]
ENTRYPOINT ["edgebench"]
CMD ["run"]
