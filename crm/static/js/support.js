// Support: what htmx cannot do alone on the dispatch board (dragging an intervention onto a
// technician's slot) and in the technician view (drawing the customer's signature).
"use strict";
