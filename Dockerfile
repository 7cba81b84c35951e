# Continuum's image: the worker, the API and the CLI (the command picks which).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CONTINUUM_LOG_FORMAT=json CONTINUUM_DATA_DIR=/var/lib/continuum
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN pip install --no-cache-dir --no-deps . && useradd --system --home /var/lib/continuum continuum \
    && mkdir -p /var/lib/continuum && chown continuum /var/lib/continuum
USER continuum
EXPOSE 8000
CMD ["continuum", "api", "--host", "0.0.0.0", "--port", "8000"]
