// Custom fields admin: drag a field to reorder (SortableJS). A drop fills the hidden
// #field-reorder form with the ids in their new order and submits it, so htmx sends it with
// the CSRF header <body> passes on and swaps the panel the server answers with. The arrows
// beside each field do the same without a pointer, or without JavaScript.
(function () {
  "use strict";
  if (window.crmCustomFields) return;  // loaded again by a boosted navigation
  window.crmCustomFields = true;

  function dropped(list) {
    var form = document.getElementById("field-reorder");
    if (!form) return;
    form.querySelectorAll("input[name=ids]").forEach(function (input) { input.remove(); });
    list.querySelectorAll(":scope > li[data-id]").forEach(function (item) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "ids";
      input.value = item.dataset.id;
      form.appendChild(input);
    });
    form.requestSubmit();
  }

  function init() {
    var list = document.querySelector("#field-list:not([data-sortable])");
    if (!list || !window.crmWithSortable) return;
    list.dataset.sortable = "on";
    window.crmWithSortable(list, function () {
      window.Sortable.create(list, {
        handle: ".drag-handle",
        forceFallback: true,        // pointer events: the same with a mouse, a pen or a finger
        animation: 120,
        ghostClass: "card-ghost",
        onEnd: function (event) { if (event.oldIndex !== event.newIndex) dropped(list); }
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
  document.addEventListener("htmx:after:process", init);
})();
