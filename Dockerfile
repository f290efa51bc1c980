# CPU image: `docker build -t edgebench . && docker run --rm -v "$PWD/reports:/app/reports" edgebench`
# runs the embedded demo study (`edgebench run`) and leaves the report in ./reports.
FROM python:3.11-slim

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
