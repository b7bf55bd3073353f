# The sandboxd daemon (not the sandbox runner image). It talks to the host's Docker engine through the
# socket that docker-compose.yml mounts; the runner image must already exist in that engine
# (`sandboxd image build` on the host).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libseccomp2 curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sandboxd
COPY pyproject.toml README.md ./
COPY sandboxd ./sandboxd
COPY trainer_client ./trainer_client
COPY policies ./policies
RUN pip install --no-cache-dir .
ENV SANDBOXD_POLICIES_DIR=/opt/sandboxd/policies
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["sandboxd", "serve"]
