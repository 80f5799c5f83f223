# The pytest-aina GitHub App.
#
#   docker build -t pytest-aina-app .
#   docker run -p 8000:8000 -v aina-data:/data --env-file aina.env pytest-aina-app        # web
#   docker run -v aina-data:/data --env-file aina.env pytest-aina-app \
#       python -m github_app serve --worker-only                                            # jobs
#
# One image, two roles: gunicorn answers webhooks and telemetry; `serve --worker-only` runs
# the job queue (GitHub calls, the Reasoner, evolution on the CPU). Both share the SQLite
# database on the /data volume. See docs/github-app.md.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch from PyTorch's CPU index first: the default index pulls the CUDA build (GBs), and
# the App evaluates candidates in Triton's interpreter; GPU evidence comes from CI runners.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4,<3"

COPY pyproject.toml README.md ./
COPY pytest_aina ./pytest_aina
COPY github_app ./github_app
COPY kernels ./kernels
RUN pip install . "gunicorn>=22"

RUN useradd --create-home --uid 10001 aina && mkdir -p /data && chown aina /data
USER aina

ENV AINA_DATABASE=/data/aina.sqlite3 \
    AINA_WORK_DIR=/data/work \
    TRITON_INTERPRET=1
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"

# Threads, not many processes: a webhook's work is a database write; jobs run elsewhere.
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "8", \
     "--access-logfile", "-", "github_app:create_app()"]
