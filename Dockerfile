# storyloom on an NVIDIA GPU. Build: docker build -t storyloom .
#
# The official Python 3.11 image (Debian bookworm) is the base: it has Python 3.11 itself and no user with UID
# 1000. CUDA comes from the PyPI wheels that requirements.lock pins (torch and its nvidia-* libraries bundle
# the CUDA runtime, cuBLAS and cuDNN); only the host's NVIDIA driver is needed, which the NVIDIA Container
# Toolkit mounts into the container when a GPU is reserved (see docker-compose.yml).
FROM python:3.11-slim-bookworm

# NVIDIA_*: what the NVIDIA Container Toolkit gives the container (CUDA base images set these themselves).
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/cache/huggingface \
    STORYLOOM_PATHS__DATA_DIR=/data \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --user-group storyloom \
 && mkdir -p /app /data /cache/huggingface \
 && chown storyloom:storyloom /app /data /cache/huggingface

WORKDIR /app
RUN python3.11 -m venv /opt/venv && chown -R storyloom:storyloom /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY --chown=storyloom:storyloom pyproject.toml requirements.lock README.md config.toml ./
COPY --chown=storyloom:storyloom storyloom ./storyloom
USER storyloom
# The lock pins every package (the same set the tests ran on); see the README's "Installing and the lock".
RUN pip install --upgrade pip && pip install -c requirements.lock .

VOLUME ["/data", "/cache/huggingface"]
# DISCORD_TOKEN comes from the environment at run time; it is never baked into the image.
CMD ["storyloom", "run", "--config", "/app/config.toml"]
