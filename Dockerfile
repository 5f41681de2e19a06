FROM python:3.11-slim
WORKDIR /app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 DO_NOT_TRACK=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends libmagic1 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml constraints.txt ./
COPY rag_service ./rag_service
COPY pipelines ./pipelines
COPY benchmarks ./benchmarks
# CPU torch first, then everything else pinned to it (no CUDA build).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -c constraints.txt .
EXPOSE 8080
CMD ["rag-service", "serve", "--host", "0.0.0.0", "--port", "8080"]
