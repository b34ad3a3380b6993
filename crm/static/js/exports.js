// Export buttons (templates/exports/_export_link.html). A list filters in place and htmx
// pushes its filters to the address bar, so a download takes them from there when it is
// sent rather than from the page as it was first drawn. Loaded again by every page that
// shows the buttons: the listener is added once.
(function () {
  "use strict";
  if (window.crmExportsReady) return;
  window.crmExportsReady = true;
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-export")) return;
    var button = event.submitter;
    var attribute = button && button.hasAttribute("formaction") ? "formaction" : "action";
    var element = attribute === "formaction" ? button : form;
    var url = new URL(element.getAttribute(attribute), window.location.href);
    url.search = window.location.search;
    element.setAttribute(attribute, url.pathname + url.search);
  });
})();
