// Linear blend skinning onto the 24 SMPL joints, shared by the body and
// shadow passes. u_skin[j] maps a rest-pose point to world space for joint j
// (global joint transform times inverse bind), so four matrix-vector products
// per vertex is all the posing costs.
uniform mat4 u_skin[24];

in vec3 in_position;
in vec3 in_normal;
in uvec4 in_joints;
in vec4 in_weights;

mat4 skin_matrix() {
    return u_skin[in_joints.x] * in_weights.x
         + u_skin[in_joints.y] * in_weights.y
         + u_skin[in_joints.z] * in_weights.z
         + u_skin[in_joints.w] * in_weights.w;
}
