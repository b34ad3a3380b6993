// The shared agenda: what htmx cannot do alone (creating by dragging over empty
// slots, moving and resizing events by drag). Loaded on every page, idle elsewhere.
"use strict";
