// Image upload: make the image record, then stream the file with a progress bar.
// The file goes as the raw body of one PUT (the browser reads it from disk as it sends);
// if the upload fails, the record is deleted so nothing half-made is left.
(function () {
  var form = document.getElementById("upload-form");
  if (!form) { return; }
  var csrf = document.body.getAttribute("data-csrf");
  var prefix = form.getAttribute("data-prefix");
  var bar = document.getElementById("upload-progress");
  var percent = document.getElementById("upload-percent");
  var error = document.getElementById("upload-error");

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    bar.hidden = true;
    form.querySelector("button[type=submit]").disabled = false;
  }

  function discard(id) {
    return fetch(prefix + "/images/" + id + "/delete", {
      method: "POST", headers: {"X-CSRF-Token": csrf, "X-Requested-With": "fetch"}});
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    error.hidden = true;
    var file = document.getElementById("u-file").files[0];
    if (!file) { fail("Choose a file to upload."); return; }
    form.querySelector("button[type=submit]").disabled = true;
    var body = new URLSearchParams();
    ["name", "disk_format", "visibility"].forEach(function (name) {
      body.append(name, form.elements[name].value);
    });
    fetch(form.getAttribute("data-create"), {
      method: "POST", body: body, headers: {"X-CSRF-Token": csrf}
    }).then(function (r) {
      return r.json().then(function (data) { return {ok: r.ok, data: data}; });
    }).then(function (made) {
      if (!made.ok) { fail(made.data.error); return; }
      var id = made.data.id;
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", prefix + "/images/" + id + "/data");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      bar.hidden = false;
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) {
          bar.value = Math.round(100 * e.loaded / e.total);
          percent.textContent = bar.value + " %";
        }
      };
      xhr.onload = function () {
        if (xhr.status < 300) {
          bar.value = 100;
          percent.textContent = "Uploaded";
          window.location.reload();
        } else {
          var message = "Upload failed (" + xhr.status + ")";
          try { message = JSON.parse(xhr.responseText).error || message; } catch (e) {}
          discard(id).then(function () { fail(message); });
        }
      };
      xhr.onerror = function () { discard(id).then(function () { fail("Upload failed."); }); };
      xhr.send(file);
    }).catch(function (e) { fail(String(e)); });
  });
})();
