// The demo page's behaviour: camera preview, one frame as JPEG per click, the API's answer shown.
// Loaded as a file (no inline script) so the page works under a strict Content-Security-Policy.
"use strict";

const KEY_STORAGE = "faceauth-demo-api-key";

const $ = (id) => document.getElementById(id);
const video = $("camera");
const canvas = $("frame");
const apiKey = $("api-key");
const userId = $("user-id");
const buttons = [$("enrol"), $("login")];
const result = $("result");

function show(outcome, message, token) {
  result.dataset.outcome = outcome;
  $("status").textContent = message;
  $("token").hidden = !token;
  $("token-header").textContent = token ? JSON.stringify(token.header, null, 2) : "";
  $("token-claims").textContent = token ? JSON.stringify(token.claims, null, 2) : "";
}

// One part of a JWT, base64url-decoded; the signature is the backend's to verify (JWKS).
function decodePart(part) {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function decodeToken(token) {
  const [header, claims] = token.split(".");
  return { header: decodePart(header), claims: decodePart(claims) };
}

function grabFrame() {
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

async function send(path, verb) {
  if (!apiKey.value.trim() || !userId.value.trim()) {
    show("failure", "Enter the API key and a user id first.");
    return;
  }
  buttons.forEach((button) => { button.disabled = true; });
  show("pending", `${verb}\u2026`);
  try {
    const form = new FormData();
    form.append("user_id", userId.value.trim());
    form.append("image", await grabFrame(), "frame.jpg");
    const response = await fetch(path, {
      method: "POST", body: form, headers: { Authorization: `Bearer ${apiKey.value.trim()}` },
    });
    const answer = await response.json();
    if (!response.ok) {
      show("failure", `${verb} failed: HTTP ${response.status} ${answer.error.code}: ${answer.error.message}`);
    } else if (answer.access_token) {
      show("success", `Logged in as ${userId.value.trim()}; the token expires in ${answer.expires_in} s.`,
           decodeToken(answer.access_token));
    } else {
      show("success", `Enrolled a face for ${answer.user_id} (face id ${answer.face_id}).`);
    }
  } catch (error) {
    show("failure", `${verb} failed: ${error.message}`);
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
}

apiKey.value = sessionStorage.getItem(KEY_STORAGE) || "";
apiKey.addEventListener("input", () => sessionStorage.setItem(KEY_STORAGE, apiKey.value));
$("enrol").addEventListener("click", () => send("../auth/face-register", "Enrolment"));
$("login").addEventListener("click", () => send("../auth/face-login", "Login"));

video.addEventListener("loadeddata", () => {
  buttons.forEach((button) => { button.disabled = false; });
  show("ready", "Camera ready: look into it and press Enrol or Log in.");
});

async function startCamera() {
  if (!navigator.mediaDevices) {  // browsers offer cameras to secure contexts only
    show("failure", "No camera access: open this page over HTTPS or on localhost.");
    return;
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  } catch (error) {
    show("failure", `No camera: ${error.message}`);
  }
}

startCamera();
