// nftgan studio: follows a background job (an export) by polling its progress; nothing else needs a script.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box) { return; }
  var id = box.getAttribute("data-job");
  var bar = document.getElementById("job-progress");
  var label = document.getElementById("job-label");
  var error = document.getElementById("job-error");
  var link = document.getElementById("job-download");
  function poll() {
    fetch("/jobs/" + encodeURIComponent(id) + "/state", { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        box.setAttribute("data-state", job.state);
        if (job.fraction !== null) { bar.value = job.fraction; }
        label.textContent = job.state === "done" ? "done: " + (job.result.n || "") + " tokens in " + job.result.out
                                                 : (job.label || job.state);
        if (job.state === "failed") { error.textContent = job.error; return; }
        if (job.state === "done") { link.hidden = false; return; }
        setTimeout(poll, 500);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  if (box.getAttribute("data-state") === "running") { poll(); }
})();
