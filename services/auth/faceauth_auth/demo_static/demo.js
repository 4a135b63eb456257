// The demo page's behaviour: camera preview, one frame as JPEG per click, the API's answer shown.
// Logging in answers a liveness challenge first: the page asks for the head turns the service chose,
// one step at a time (#challenge, whose data-pose says the step), and sends the frames it took
// meanwhile with the login photo.
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

const STEP_TEXT = { front: "Look straight into the camera", left: "Turn your head to your left",
                    right: "Turn your head to your right" };
const STEP_SETTLE_MS = 1200;  // time to turn before the first frame of a step
const FRAME_GAP_MS = 300;
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function prompt(pose) {
  const challenge = $("challenge");
  challenge.hidden = !pose;
  challenge.dataset.pose = pose || "";
  challenge.textContent = pose ? STEP_TEXT[pose] : "";
}

// Fetch a challenge for the user, take the login photo facing the camera, then two frames per step.
async function answerChallenge(form, headers) {
  const response = await fetch("../v1/challenges", {
    method: "POST", headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: userId.value.trim() }),
  });
  const challenge = await response.json();
  if (!response.ok) {
    throw new Error(`challenge: HTTP ${response.status} ${challenge.error.code}: ${challenge.error.message}`);
  }
  prompt("front");
  await sleep(STEP_SETTLE_MS);
  const photo = await grabFrame();
  form.append("image", photo, "frame.jpg");
  const frames = [photo];
  for (const step of challenge.steps) {
    prompt(step);
    await sleep(STEP_SETTLE_MS);
    frames.push(await grabFrame());
    await sleep(FRAME_GAP_MS);
    frames.push(await grabFrame());
  }
  prompt(null);
  form.append("challenge_id", challenge.challenge_id);
  frames.forEach((frame, index) => form.append("frames", frame, `frame${index}.jpg`));
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
    const headers = { Authorization: `Bearer ${apiKey.value.trim()}` };
    form.append("user_id", userId.value.trim());
    if (verb === "Login") {
      await answerChallenge(form, headers);
    } else {
      form.append("image", await grabFrame(), "frame.jpg");
    }
    const response = await fetch(path, { method: "POST", body: form, headers });
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
    prompt(null);
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
