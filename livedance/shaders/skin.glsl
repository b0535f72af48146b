// Linear blend skinning onto the 24 SMPL joints, shared by the body and
// shadow passes. Dancers are instances: one draw call skins up to
// SKIN_BATCH of them, instance i reading its 24 matrices from u_skin[24 i ..].
// u_skin[j] maps a rest-pose point to world space for joint j (global joint
// transform times inverse bind), so four matrix-vector products per vertex
// is all the posing costs. SKIN_BATCH matches renderer.SKIN_BATCH; 8 keeps
// the block at 12 KB, inside GL 3.3's guaranteed 16 KB.
#define SKIN_BATCH 8

layout(std140) uniform Skins {
    mat4 u_skin[24 * SKIN_BATCH];
};

in vec3 in_position;
in vec3 in_normal;
in uvec4 in_joints;
in vec4 in_weights;

mat4 skin_matrix() {
    int base = 24 * gl_InstanceID;
    return u_skin[base + int(in_joints.x)] * in_weights.x
         + u_skin[base + int(in_joints.y)] * in_weights.y
         + u_skin[base + int(in_joints.z)] * in_weights.z
         + u_skin[base + int(in_joints.w)] * in_weights.w;
}
