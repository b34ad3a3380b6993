// Our own JavaScript: only what HTML and htmx cannot do. No inline scripts anywhere,
// so the Content-Security-Policy can forbid them.
(function () {
  "use strict";

  // Toasts: the server announces success with `HX-Trigger: {"crm:toast": {...}}`.
  function showToast(message, level) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-" + (level || "success");
    toast.setAttribute("role", level === "error" ? "alert" : "status");
    toast.textContent = message;
    box.appendChild(toast);
    setTimeout(function () { toast.remove(); }, 5000);
  }
  document.addEventListener("crm:toast", function (event) {
    showToast(event.detail.message, event.detail.level);
  });

  // Toasts rendered by the server (flash messages, htmx errors) fade away too.
  function expireToasts(root) {
    (root || document).querySelectorAll(".toast:not([data-expiring])").forEach(function (toast) {
      toast.dataset.expiring = "1";
      setTimeout(function () { toast.remove(); }, toast.classList.contains("toast-error") ? 8000 : 5000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { expireToasts(); });
  document.addEventListener("htmx:after:swap", function () { expireToasts(); });

  function typingInField(event) {
    var el = event.target;
    return el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }

  // Keyboard: "/" goes to the search box, "n" to the first field of a quick-add form,
  // Escape cancels an inline edit or closes the search suggestions.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      var editor = event.target.closest && event.target.closest("form.editing");
      if (editor) {
        var cancel = editor.querySelector(".cancel");
        if (cancel) { event.preventDefault(); cancel.click(); }
        return;
      }
      var suggestions = document.getElementById("search-suggestions");
      if (suggestions) suggestions.innerHTML = "";
      return;
    }
    if (typingInField(event)) return;
    if (event.key === "/") {
      var search = document.getElementById("global-search");
      if (search) { event.preventDefault(); search.focus(); search.select(); }
    } else if (event.key === "n") {
      var first = document.querySelector(".quick-add input:not([type=hidden])");
      if (first) { event.preventDefault(); first.focus(); }
    }
  });

  // A click outside the global search closes its suggestions.
  document.addEventListener("click", function (event) {
    var suggestions = document.getElementById("search-suggestions");
    if (suggestions && !event.target.closest(".global-search")) suggestions.innerHTML = "";
  });

  // Invitation links: one click selects the whole link for copying.
  document.addEventListener("focusin", function (event) {
    if (event.target.classList && event.target.classList.contains("copy-link")) event.target.select();
  });
})();
