"""Background imports for the admin page's progress bar."""
import threading

from content_bundles import course, pack, rows

from appliance.content.jobs import ImportJobs


def test_job_runs_reports_progress_and_result(content, tmp_path):
    jobs = content.get("imports")
    path = pack(tmp_path / "mini.zip", *course())
    job_id = jobs.submit(path, delete_after=True, label="mini.zip")
    done = jobs.wait(job_id, timeout=60)
    assert done["state"] == "done" and done["percent"] == 100.0
    assert done["result"]["course_id"] == "mini" and done["result"]["status"] == "installed"
    assert done["done_bytes"] == done["total_bytes"] > 0
    assert not path.exists()  # the upload is removed when the job ends
    assert jobs.list()[0]["id"] == job_id and jobs.get("nope") is None
    assert rows(content, "SELECT id FROM courses") == [("mini",)]


def test_failed_job_carries_the_message(content, tmp_path):
    jobs = content.get("imports")
    doc, files = course()
    doc["skills"][0]["prerequisites"] = ["b"]
    job = jobs.wait(jobs.submit(pack(tmp_path / "cycle.zip", doc, files)), timeout=60)
    assert job["state"] == "failed" and job["code"] == "import_rejected"
    assert "cycle" in job["error"]
    assert rows(content, "SELECT count(*) FROM courses") == [(0,)]


def test_close_cancels_before_commit_and_joins(content, tmp_path):
    """A job caught mid-way by shutdown stops before its commit: nothing is half-imported."""
    importer = content.get("content_importer")
    reached = threading.Event()
    release = threading.Event()

    class Slow:
        def run(self, path, force=False, progress=None):
            def gate(done, total, stage):
                if stage == "verifying":
                    reached.set()
                    release.wait(30)
                progress(done, total, stage)

            return importer.run(path, force=force, progress=gate)

    jobs = ImportJobs(Slow())
    first = jobs.submit(pack(tmp_path / "a.zip", *course()))
    queued = jobs.submit(pack(tmp_path / "b.zip", *course(course_id="other")))
    assert reached.wait(30)
    closer = threading.Thread(target=jobs.close)
    closer.start()
    assert jobs._stopping.wait(30)  # shutdown has begun before the import may continue
    release.set()
    closer.join(30)
    assert not closer.is_alive()
    assert jobs.get(first)["state"] == "failed" and "shutting down" in jobs.get(first)["error"]
    assert jobs.get(queued)["state"] == "cancelled"
    assert rows(content, "SELECT count(*) FROM courses") == [(0,)]
    assert not any(t.name == "content-import" and t.is_alive() for t in threading.enumerate())


def test_any_worker_sees_the_job_through_the_database(content, tmp_path):
    """Gunicorn runs several workers: the one polled is often not the one importing."""
    from appliance.content.jobstore import JobStore

    running_here = content.get("imports")
    other_worker = ImportJobs(content.get("content_importer"), JobStore(content.db))
    job_id = running_here.submit(pack(tmp_path / "mini.zip", *course()))
    running_here.wait(job_id, timeout=60)
    seen = other_worker.get(job_id)
    assert seen["state"] == "done" and seen["result"]["course_id"] == "mini" and seen["percent"] == 100.0
    assert [j["id"] for j in other_worker.list()] == [job_id]
    assert other_worker.get("unknown") is None
    other_worker.close()


def test_a_job_whose_process_died_is_reported_failed(content):
    import json
    import subprocess
    import sys

    from appliance.content.jobstore import JobStore, process_owner

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    owner = process_owner(child.pid)
    child.kill()
    child.wait()
    job = {"id": "j1", "label": "x.zip", "state": "running", "stage": "verifying", "created_at": 1.0}
    content.db.write(lambda c: c.execute("INSERT INTO import_jobs VALUES ('j1', ?, 1.0, ?)", (owner, json.dumps(job))))
    seen = JobStore(content.db).load("j1")
    assert seen["state"] == "failed" and seen["code"] == "interrupted" and "start it again" in seen["error"]
    # A job of a live process (this one) stays as it is.
    alive = dict(job, id="j2")
    content.db.write(lambda c: c.execute("INSERT INTO import_jobs VALUES ('j2', ?, 2.0, ?)",
                                         (process_owner(), json.dumps(alive))))
    assert JobStore(content.db).load("j2")["state"] == "running"
