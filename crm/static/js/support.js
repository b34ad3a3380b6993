// Support: what htmx cannot do alone on the dispatch board (dragging an intervention onto a
// technician's slot) and in the technician view (drawing the customer's signature).
"use strict";

// ---- Technician's report: the customer's signature drawn on a <canvas> ----------------------
// Pointer events: the same code for a finger, a pen and a mouse. At the end of every stroke the
// drawing is exported as a PNG data URL into the form's hidden "signature" input, so the form
// posts it like any other field, with htmx or without. A form sent back with errors (422) keeps
// the signature in that input, and the pad draws it back. The server checks it again.
(function () {
  "use strict";

  var INK = "#1d2330";

  function setUp(pad) {
    var canvas = pad.querySelector("canvas");
    var input = pad.parentNode.querySelector("input.signature-value");
    if (!canvas || !input) return;
    pad.dataset.ready = "1";
    var context = canvas.getContext("2d");
    var pointer = null;   // the pointer drawing now: a second finger does not draw
    var last = null;

    function pen() {
      context.lineWidth = 2.5;
      context.lineCap = "round";
      context.lineJoin = "round";
      context.strokeStyle = INK;
      context.fillStyle = INK;
    }

    function drawBack() {
      if (!input.value) return;
      var image = new Image();
      image.onload = function () {
        var box = canvas.getBoundingClientRect();
        context.drawImage(image, 0, 0, box.width, box.height);
      };
      image.src = input.value;
    }

    // The bitmap follows the displayed size and the screen's pixel ratio, so strokes are sharp.
    pad.fit = function () {
      var box = canvas.getBoundingClientRect();
      if (!box.width || pad.fittedWidth === box.width) return;
      pad.fittedWidth = box.width;
      var ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(box.width * ratio);
      canvas.height = Math.round(box.height * ratio);
      context.setTransform(ratio, 0, 0, ratio, 0, 0);
      pen();
      drawBack();
    };

    function at(event) {
      var box = canvas.getBoundingClientRect();
      return { x: event.clientX - box.left, y: event.clientY - box.top };
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (pointer !== null || event.button > 0) return;
      event.preventDefault();
      pointer = event.pointerId;
      canvas.setPointerCapture(pointer);
      last = at(event);
      context.beginPath();  // a tap leaves a dot
      context.arc(last.x, last.y, context.lineWidth / 2, 0, 2 * Math.PI);
      context.fill();
    });

    canvas.addEventListener("pointermove", function (event) {
      if (event.pointerId !== pointer) return;
      var moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      if (!moves.length) moves = [event];
      context.beginPath();
      context.moveTo(last.x, last.y);
      moves.forEach(function (move) {
        last = at(move);
        context.lineTo(last.x, last.y);
      });
      context.stroke();
    });

    function strokeEnded(event) {
      if (event.pointerId !== pointer) return;
      pointer = null;
      input.value = canvas.toDataURL("image/png");
      pad.classList.add("signed");
    }
    canvas.addEventListener("pointerup", strokeEnded);
    canvas.addEventListener("pointercancel", strokeEnded);

    pad.querySelector(".signature-clear").addEventListener("click", function () {
      context.save();
      context.setTransform(1, 0, 0, 1, 0, 0);
      context.clearRect(0, 0, canvas.width, canvas.height);
      context.restore();
      input.value = "";
      pad.classList.remove("signed");
    });

    pad.fit();
  }

  function setUpAll() {
    document.querySelectorAll("[data-signature-pad]:not([data-ready])").forEach(setUp);
  }
  document.addEventListener("DOMContentLoaded", setUpAll);
  document.addEventListener("htmx:after:swap", setUpAll);
  // A phone turned sideways: refit (the signature so far is drawn back from the input).
  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-signature-pad][data-ready]").forEach(function (pad) {
      if (pad.fit) pad.fit();
    });
  });
})();
