# Locust users for `just bench load`: the same GET as the atf case, back to
# back (no wait), checking the status like the case's expectation does.
# LOCUST_USER picks the client: "fast" (FastHttpUser, geventhttpclient:
# Locust's fastest) or "http" (HttpUser, python-requests: its default).
import os

from locust import FastHttpUser, HttpUser, constant, task


class FastGet(FastHttpUser):
    wait_time = constant(0)
    abstract = os.environ.get("LOCUST_USER", "fast") != "fast"

    @task
    def get(self):
        with self.client.get("/ok.json", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")


class Get(HttpUser):
    wait_time = constant(0)
    abstract = os.environ.get("LOCUST_USER", "fast") != "http"

    @task
    def get(self):
        with self.client.get("/ok.json", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
