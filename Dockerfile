# storyloom on an NVIDIA GPU. Build: docker build -t storyloom .
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/cache/huggingface \
    STORYLOOM_PATHS__DATA_DIR=/data

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv fonts-dejavu-core fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 storyloom \
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
